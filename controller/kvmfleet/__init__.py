"""kvmfleet: Nova's job done without agents."""

__version__ = "0.1.0"
