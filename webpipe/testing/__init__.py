"""The `.wp` test language runner: describe/it, mocks, assertions, reports."""
