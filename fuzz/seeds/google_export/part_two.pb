
-
second-part-secret20heidiPart Two (0 (‰