-- Add what a process counted and no script of its carried (counting.py: an idle
-- process, its close, its own reading of the figures). KEYS = {counters hash}
-- ARGV = {"name=n,name=n,...", counters TTL (see counting.lua)}
lifetime(ARGV[2])
carry(ARGV[1])
return 0
