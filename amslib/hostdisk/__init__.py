"""What runs on a host for volume groups: pure planners (argv, scripts, file texts) and their executor."""
