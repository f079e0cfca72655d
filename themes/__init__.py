"""Theme files (TOML) that neurotop loads at start. Users add their own in ~/.config/neurotop/themes."""
