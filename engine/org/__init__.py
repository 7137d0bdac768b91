"""The organisation (departments, agencies, forces, wards, communes) as dated data loaded from a file."""
