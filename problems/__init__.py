"""Problems: one module per problem; each registers itself by name on import."""
