"""Small helpers (files, processes, paths, the kernel) that import nothing else of lesionkit."""
