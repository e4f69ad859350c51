"""sources room (see README "Code map")."""
