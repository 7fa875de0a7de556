"""flagsync: keeps one minimal consent flag in a One-style council database in line with consent records."""
