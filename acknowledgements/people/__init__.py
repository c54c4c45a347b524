"""People: who they are, which audiences they belong to, whether they are still here."""
