"""evaluation room (see README "Code map")."""
