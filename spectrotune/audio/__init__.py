"""audio room (see README "Code map")."""
