"""models room (see README "Code map")."""
