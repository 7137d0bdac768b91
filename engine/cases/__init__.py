"""Case files: everything about one case, for auditors and evidence bundles."""
