"""``facecast demo``: the whole product on the shipped defaults, in one command."""
