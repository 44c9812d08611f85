"""ipr-monitor: watch IP-policy news and report which tracked commitments moved."""

__version__ = "0.1.0"
