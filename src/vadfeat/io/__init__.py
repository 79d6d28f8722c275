"""Reading inputs: finding videos (``inputs``), decoding them (``video``) and dumping frames (``frames``)."""
