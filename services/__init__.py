"""RDMT's streaming services, one package each; see README.md."""
