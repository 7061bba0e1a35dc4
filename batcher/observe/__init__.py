"""batcher/observe"""
