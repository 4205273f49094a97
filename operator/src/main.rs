fn main() {
    println!("trading-agent-operator: not implemented yet");
}
