"""rva — a vertical-first autoscaler for Ray on Kubernetes."""

__version__ = "0.1.0"
