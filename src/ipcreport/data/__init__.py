"""The data contract and everything that reads, checks, partitions or generates a dataset."""
