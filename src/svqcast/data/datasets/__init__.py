"""One module per dataset (a module may serve several names); the registry is
:mod:`svqcast.data`. Each module is imported on first use of one of its names."""
