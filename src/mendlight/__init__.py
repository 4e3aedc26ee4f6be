"""mendlight: learned model editing (MEND and its baselines) as a PyTorch Lightning framework."""

__version__ = "0.1.0"
