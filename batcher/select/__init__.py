"""batcher/select"""
