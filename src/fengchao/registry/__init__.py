"""The grid and the people in it (M1, M2): models, import, validation, completeness."""
