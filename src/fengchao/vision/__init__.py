"""Pure computation on images: faces, plates and their rules. No database, no web."""
