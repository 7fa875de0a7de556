"""One module per revision: 0001 is the schema flagsync 0.1 shipped; each later one changes it by one step."""
