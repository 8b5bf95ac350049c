"""The engine, its clock, the model contract and what every part shares."""
