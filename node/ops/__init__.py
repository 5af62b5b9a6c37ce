"""Operations: fleet roles, jobs, metrics, logs."""
