"""Recovery: rebuild the state database's rows of volume and snapshot groups from their EC2 tags."""
