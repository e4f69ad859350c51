"""training room (see README "Code map")."""
