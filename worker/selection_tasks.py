"""Tasks that refill the pair queue with actively selected pairs (queue ``default``)."""
