"""batcher/review"""
