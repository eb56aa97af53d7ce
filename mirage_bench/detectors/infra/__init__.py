"""What every detector stands on besides its own module: building from a card, checkpoints and weights files,
the timm backbone loader, the conformance suite and parameter counts."""
