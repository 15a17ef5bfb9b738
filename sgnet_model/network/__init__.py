"""The SG-Net network: ResNet+FPN backbone, FCOS head, spatial-granularity mask head, tracking (motion) head, and
what training needs of it: target assignment and losses."""
