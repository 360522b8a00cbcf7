"""Operations scripts run as tests: load, faults and the restore drill, against real processes."""
