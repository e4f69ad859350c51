"""prepare room (see README "Code map")."""
