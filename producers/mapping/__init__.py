"""The map from work4all to Dataverse: its format, transforms, proposer, gate and transform stage."""
