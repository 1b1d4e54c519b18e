"""GPU cost & compute estimation: training compute and cost, memory, serving, scaling laws."""
