"""The HTTP control plane: thin routes over ``tribune.service``."""
