"""What people decide: the append-only review store (adjudications, sign-offs, audit log) and what changed since a signed-off cut."""
