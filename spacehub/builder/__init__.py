"""Checkout → artifact: a library with no database and no knowledge of runtimes."""
