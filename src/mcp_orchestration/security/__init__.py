"""Secret rules, redaction of key material, masking and the naming rules that refuse credential-like ids."""
