SELECT name FROM assets WHERE id #-- 1
= id