
-
first-part-secret-20gracePart One (0(‰