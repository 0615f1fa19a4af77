module fcgi-peer-go

go 1.19
