"""ams — the AWS Management Suite: EBS volume groups, snapshot groups and hosts."""

__version__ = "0.1.0"
