"""Training strategies, one subpackage or module per family; every strategy is also a plain
library function that works without the harness."""
