pub mod ipmisim;
