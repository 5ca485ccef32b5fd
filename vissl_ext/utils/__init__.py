"""Small utilities every layer may use: VISSL compatibility fixes, atomic writes, safe loading,
checkpoint validation, environment masking, the quiet console's `say`, the launcher's stamp."""
