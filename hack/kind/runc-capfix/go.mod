module stepline.local/runc-capfix

go 1.26.0
