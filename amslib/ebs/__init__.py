"""Services and pure checks for EBS volume groups."""
