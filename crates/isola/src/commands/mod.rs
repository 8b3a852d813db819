pub mod bundle;
pub mod containers;
pub mod doctor;
pub mod image;
pub mod images;
pub mod pull;
pub mod run;
pub mod run_vm;
