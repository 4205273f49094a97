fn main() {
    println!("trading-agent: not implemented yet");
}
