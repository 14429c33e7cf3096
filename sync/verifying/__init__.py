"""`verify` and `decrypt`: prove a bundle was not altered, then open what was proved."""
